"""``python -m loadgen`` runs the same Click group as the console script."""

from loadgen.cli import main

if __name__ == "__main__":
    main()
