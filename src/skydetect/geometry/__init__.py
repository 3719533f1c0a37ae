"""skydetect.geometry"""
