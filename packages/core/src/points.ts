/**
 * The container service's failpoints (see failpoint.ts): where a crash-consistency test can
 * make the daemon die. Each sits between two steps whose order matters after a crash; the
 * e2e suite test/e2e/failpoints.e2e.test.ts kills berthd at each and checks the restart.
 */
import { declareFailpoint } from './failpoint.js';

export const FP = {
  createAfterRootfs: declareFailpoint(
    'create.afterRootfs',
    'container create: after the beforeCreate taps made the root filesystem, before the record dir exists',
  ),
  createBeforeRecordSave: declareFailpoint(
    'create.beforeRecordSave',
    'container create: the record dir exists, config.v2.json not written yet',
  ),
  createAfterRecordSave: declareFailpoint(
    'create.afterRecordSave',
    'container create: the record is saved, before the create event and the answer',
  ),
  startAfterRuntimeCreate: declareFailpoint(
    'start.afterRuntimeCreate',
    "container start: the runtime created the container (runc init waits), before the runtime's start",
  ),
  startAfterRuntimeStart: declareFailpoint(
    'start.afterRuntimeStart',
    "container start: the runtime's start returned (the process runs), before the running state is saved",
  ),
  exitAfterSeen: declareFailpoint(
    'exit.afterSeen',
    'exit handling: the runtime reported the exit, before the record changes',
  ),
  exitBeforeSave: declareFailpoint(
    'exit.beforeSave',
    'exit handling: state set to exited in memory, events sent, before the exited state is saved',
  ),
  exitAfterSave: declareFailpoint(
    'exit.afterSave',
    "exit handling: the exited state is saved, before the unmount and the runtime's delete",
  ),
  removeAfterRemovingSave: declareFailpoint(
    'remove.afterRemovingSave',
    "container rm: marked removing (saved), before the unmount and the runtime's delete",
  ),
  removeAfterBackendDelete: declareFailpoint(
    'remove.afterBackendDelete',
    "container rm: the runtime's delete is done, before the record dir is removed",
  ),
} as const;
