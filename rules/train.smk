# rules/train.smk: being written (stage owner replaces this file).
