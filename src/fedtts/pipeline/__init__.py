"""fedtts.pipeline"""
