/** @berth/builder: docker build's classic builder (POST /build) over the engine and the image service. */
export { Builder, BuildStepError } from './builder.js';
export { prepareContext, applyDockerignore, dockerignorePatterns, ignoreMatcher, type BuildContext } from './context.js';
export { parseDockerfile, parseTrigger, DockerfileSyntaxError, SUPPORTED, type Step, type ParsedDockerfile } from './parse.js';
export { expand, type Vars } from './expand.js';
export { BuildCache, cacheKey } from './cache.js';
export { resolveInside } from './fs-inside.js';
export { TarTree, FsTree, type SourceTree, type TreeEntry } from './tree.js';
export type { BuildContainers, BuildImages, BuildOptions } from './types.js';
