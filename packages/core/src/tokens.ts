/**
 * Injection tokens for the replaceable parts of an engine. A token shares its name with
 * its interface (vscode's createDecorator convention): `IRuntime` is both the token and
 * the type. Register providers in the engine's own tsyringe child container; never as
 * process-wide singletons.
 */
import type { InjectionToken } from 'tsyringe';
import type { RuntimeBackend } from './runtime.js';

export type IRuntime = RuntimeBackend;
export const IRuntime: InjectionToken<IRuntime> = Symbol('IRuntime');
