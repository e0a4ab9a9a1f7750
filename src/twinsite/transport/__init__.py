"""Getting frames between the active and the standby host: the frame format and the SSH transports."""
