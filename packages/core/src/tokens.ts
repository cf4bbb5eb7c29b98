/**
 * Injection tokens for the replaceable parts of an engine. A token shares its name with
 * its interface (vscode's createDecorator convention). Register providers in the engine's
 * own tsyringe child container; never as process-wide singletons.
 */
import type { InjectionToken } from 'tsyringe';
import type { IRuntime as RuntimeBackend } from './runtime.js';

export const IRuntime: InjectionToken<RuntimeBackend> = Symbol('IRuntime');
