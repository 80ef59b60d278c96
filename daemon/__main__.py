"""`python -m daemon ...` runs the same command line as the installed `marginguard` script."""

from daemon.app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
