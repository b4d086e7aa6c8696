"""``python -m pseudolabel`` runs the command line (also under ``torchrun -m pseudolabel``)."""

from pseudolabel.cli.main import main

if __name__ == "__main__":
    main()
