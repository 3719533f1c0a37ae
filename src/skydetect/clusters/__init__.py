"""skydetect.clusters"""
