# rules/tiles.smk: being written (stage owner replaces this file).
