"""Job processes, seen from outside: the command a job runs, the device queue it waits in, the warm worker that
forks it, and what every job does first (claim its run folder, listen for Stop, report how it ended).

Torch-free when imported, like engine.core: the web process launches and queues jobs with these modules.
"""
