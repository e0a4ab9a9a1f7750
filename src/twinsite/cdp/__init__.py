"""Continuous data protection on the standby: the rewind log, rewind points, bookmarks, rewind."""
