/**
 * The container state machine: created, running, paused, restarting, removing, exited,
 * dead. Only the transitions below are legal; anything else is a ConflictError. The helpers
 * keep the Docker flags (Running, Paused, Restarting, Dead), Pid, ExitCode, OOMKilled,
 * Error, StartedAt and FinishedAt consistent, as moby's container/state.go does.
 */
import { ConflictError } from './errors.js';
import type { ContainerRecord, ContainerState, ContainerStatus } from './types.js';
import { ZERO_TIME } from './types.js';

const TRANSITIONS: Readonly<Record<ContainerStatus, readonly ContainerStatus[]>> = Object.freeze({
  created: ['running', 'removing', 'dead', 'exited'],
  running: ['paused', 'exited', 'restarting', 'dead', 'removing'],
  paused: ['running', 'exited', 'restarting', 'dead', 'removing'],
  restarting: ['running', 'exited', 'dead', 'removing'],
  exited: ['running', 'restarting', 'removing', 'dead'],
  // A failed removal goes back to where it was.
  removing: ['created', 'exited', 'dead'],
  dead: ['removing'],
});

export function canTransition(from: ContainerStatus, to: ContainerStatus): boolean {
  return from === to || TRANSITIONS[from].includes(to);
}

export function assertTransition(rec: ContainerRecord, to: ContainerStatus): void {
  const from = rec.State.Status;
  if (!canTransition(from, to)) {
    throw new ConflictError(`cannot change the state of container ${rec.ID} from ${from} to ${to}`);
  }
}

export function initialState(): ContainerState {
  return {
    Status: 'created',
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 0,
    ExitCode: 0,
    Error: '',
    StartedAt: ZERO_TIME,
    FinishedAt: ZERO_TIME,
  };
}

function setFlags(s: ContainerState, status: ContainerStatus): void {
  s.Status = status;
  s.Running = status === 'running' || status === 'paused' || status === 'restarting';
  s.Paused = status === 'paused';
  s.Restarting = status === 'restarting';
  s.Dead = status === 'dead';
}

/** True while the container has a process (running, paused or restarting). */
export function isActive(rec: ContainerRecord): boolean {
  return rec.State.Status === 'running' || rec.State.Status === 'paused' || rec.State.Status === 'restarting';
}

export function setRunning(rec: ContainerRecord, pid: number, startedAt: string): void {
  assertTransition(rec, 'running');
  const s = rec.State;
  setFlags(s, 'running');
  s.Pid = pid;
  s.ExitCode = 0;
  s.Error = '';
  s.OOMKilled = false;
  s.StartedAt = startedAt;
}

export function setStopped(rec: ContainerRecord, exit: { exitCode: number; oomKilled?: boolean; finishedAt: string; error?: string }): void {
  assertTransition(rec, 'exited');
  const s = rec.State;
  setFlags(s, 'exited');
  s.Pid = 0;
  s.ExitCode = exit.exitCode;
  s.OOMKilled = !!exit.oomKilled;
  s.FinishedAt = exit.finishedAt;
  if (exit.error !== undefined) s.Error = exit.error;
}

/** Exited, and the restart policy will start it again after a backoff (dockerd's SetRestarting). */
export function setRestarting(rec: ContainerRecord, exit: { exitCode: number; oomKilled?: boolean; finishedAt: string }): void {
  assertTransition(rec, 'restarting');
  const s = rec.State;
  setFlags(s, 'restarting');
  s.Pid = 0;
  s.ExitCode = exit.exitCode;
  s.OOMKilled = !!exit.oomKilled;
  s.FinishedAt = exit.finishedAt;
}

export function setPaused(rec: ContainerRecord): void {
  assertTransition(rec, 'paused');
  setFlags(rec.State, 'paused');
}

export function setUnpaused(rec: ContainerRecord): void {
  if (rec.State.Status !== 'paused') throw new ConflictError(`Container ${rec.ID} is not paused`);
  setFlags(rec.State, 'running');
}

export function setRemoving(rec: ContainerRecord): ContainerStatus {
  const prev = rec.State.Status;
  assertTransition(rec, 'removing');
  setFlags(rec.State, 'removing');
  rec.RemovalInProgress = true;
  return prev;
}

/** A removal failed: back to the state before it (dockerd sets Dead when cleanup fails midway). */
export function resetRemoving(rec: ContainerRecord, to: ContainerStatus): void {
  rec.RemovalInProgress = false;
  const target: ContainerStatus = to === 'created' || to === 'exited' || to === 'dead' ? to : 'exited';
  setFlags(rec.State, target);
}

export function setDead(rec: ContainerRecord, error?: string): void {
  assertTransition(rec, 'dead');
  setFlags(rec.State, 'dead');
  rec.State.Pid = 0;
  if (error !== undefined) rec.State.Error = error;
}

