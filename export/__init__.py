"""clamkit.export"""
