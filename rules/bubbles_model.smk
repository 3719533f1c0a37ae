# rules/bubbles_model.smk: being written (stage owner replaces this file).
