"""skydetect.io"""
