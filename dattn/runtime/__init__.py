"""Run exported models without torch or ultralytics: numpy pre- and post-processing and runners."""
