//! `label`: show two responses to a prompt side by side in the terminal, take the labeller's
//! verdict as a key, and append `{"prompt","chosen","rejected"}` preference records (TRL's
//! convention). Ties and skips go to a sidecar so a later session skips them too; every record
//! is identified by a hash of its texts, so sessions resume whatever the input's order.

pub mod pair;
pub mod seen;
pub mod session;
pub mod width;

pub use pair::{key, Key, Pair};
pub use seen::{load_decided, sidecar_path, Appender, Seen};
pub use session::{label, Options, Summary};
pub use width::{char_width, printable, str_width, wrap};
