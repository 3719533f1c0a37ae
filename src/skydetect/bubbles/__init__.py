"""skydetect.bubbles"""
