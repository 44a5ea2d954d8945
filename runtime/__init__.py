"""clamkit.runtime"""
