"""Ultralytics integration: runtime registration, packaged model yamls, checkpoint loading, generated training data.

Import the modules by name (`dattn.ultralytics.load`, `.register`, `.checkpoint`, `.synthetic`); this package
itself imports nothing, so that `import dattn` stays free of torch and ultralytics.
"""
