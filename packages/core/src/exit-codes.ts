/**
 * The exit codes the engine sets itself, as dockerd does: one for an exit whose status is
 * lost, three for a start that failed. A process's own exit code is never one of these
 * constants' business.
 */

/**
 * A container's process is gone but its exit status could not be retrieved (its monitor
 * died, the runtime lost it, it vanished while the daemon was down). dockerd's restore sets
 * 255 for a task that is gone without an exit status, the value containerd reports as its
 * unknown exit status. Used everywhere berth reports such a lost exit.
 */
export const EXIT_CODE_UNKNOWN = 255;

/** dockerd's exitUnknown for a start that failed (set only while ExitCode is still 0). */
export const EXIT_START_FAILED = 128;
/** A start that failed because the entrypoint was not found (moby translateContainerdStartErr). */
export const EXIT_CMD_NOT_FOUND = 127;
/** A start that failed because the entrypoint could not be executed (permission denied). */
export const EXIT_EACCES = 126;
