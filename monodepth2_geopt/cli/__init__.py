"""The command-line programs. Each module has ``main(argv=None)`` (parse, build, call the library) and ``run()``,
the console command of ``pyproject.toml`` (``m2g-train`` = ``python train.py``). The repository's flat scripts
(``train.py``, ...) are thin wrappers around the same ``main``, so both spellings behave identically.
"""
