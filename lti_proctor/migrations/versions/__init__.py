"""The schema's revisions, one file each, oldest first: 0001_baseline, then 0002_..."""
