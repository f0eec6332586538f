"""`python -m polyret` (also what torchrun launches)."""

from polyret.cli import main

if __name__ == "__main__":
    main()
