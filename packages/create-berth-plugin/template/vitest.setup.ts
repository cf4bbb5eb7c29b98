// Loaded before every test file: tsyringe (berth's DI container) needs the Reflect metadata API.
import 'reflect-metadata';
