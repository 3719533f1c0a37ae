"""skydetect.plots"""
