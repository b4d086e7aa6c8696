"""The ``pseudolabel`` command line (installed as ``pseudolabel.cli``)."""
