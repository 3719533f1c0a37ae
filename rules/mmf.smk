# rules/mmf.smk: being written (stage owner replaces this file).
