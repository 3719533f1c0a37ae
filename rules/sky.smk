# placeholder (being written)
FINAL_OUTPUT += []
