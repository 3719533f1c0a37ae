"""skydetect.sky"""
