"""clamkit.trainer"""
