# rules/detect.smk: being written (stage owner replaces this file).
