//! OpenAI wire formats: lenient borrowing views of the fields the rules read. Bodies are never
//! re-serialised unless a rule rewrites them, so unknown fields pass through untouched.

pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod text;

pub use self::response::ModerationVerdict;
