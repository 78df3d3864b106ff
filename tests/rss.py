"""Peak RSS of this process, measured so that a child process does not inherit its parent's."""


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec, so a child of a
# large pytest process would report the parent's size (runtime/measure_child.py reads it the same way).
PEAK_MB_CODE = """
def peak_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""
exec(PEAK_MB_CODE)
