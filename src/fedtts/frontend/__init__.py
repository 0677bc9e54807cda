"""fedtts.frontend"""
