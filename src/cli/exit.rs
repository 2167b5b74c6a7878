//! Every exit code of the binary, in one place (sysexits.h where one fits).

pub const EXIT_OK: i32 = 0;
/// The engine or the router refused (the message says why).
pub const EXIT_REFUSED: i32 = 1;
/// A wrong command line.
pub const EXIT_USAGE: i32 = 64;
/// The system refused us something (the async runtime could not start).
pub const EXIT_OS_ERROR: i32 = 71;
/// A file could not be created (the demo's temporary site).
pub const EXIT_CANT_CREATE: i32 = 73;
/// The database could not be read or written.
pub const EXIT_STORE: i32 = 74;
/// The config file is wrong, or a file it names cannot be read (sysexits.h EX_CONFIG: what
/// service managers and scripts expect for a bad configuration).
pub const EXIT_BAD_CONFIG: i32 = 78;
