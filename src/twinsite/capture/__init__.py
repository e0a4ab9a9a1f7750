"""Continuous capture on the active host: which paths changed, from the kernel's inotify events."""
