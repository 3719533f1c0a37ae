# rules/download.smk: being written (stage owner replaces this file).
