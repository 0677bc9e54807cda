"""fedtts.eval"""
