"""A small relying party (like OpenDID's demo project) that logs in through OpenDID."""
