# rules/dataset.smk: being written (stage owner replaces this file).
