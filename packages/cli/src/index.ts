/**
 * @berth/cli: the executables. `berthd` (bin/berthd) is berthdMain() of @berth/daemon, where
 * its flag parser lives too; this module exports what the `berth` command line adds.
 */
export {};
