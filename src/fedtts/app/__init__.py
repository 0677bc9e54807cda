"""fedtts.app"""
