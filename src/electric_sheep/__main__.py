"""``python -m electric_sheep`` (and ``torchrun -m electric_sheep train ...``) runs the CLI."""

from electric_sheep.cli import main

if __name__ == "__main__":
    main()
