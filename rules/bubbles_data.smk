# rules/bubbles_data.smk: being written (stage owner replaces this file).
