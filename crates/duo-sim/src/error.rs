//! Duo-shaped failures: one type, turned into an HTTP answer in exactly one
//! place (`server::respond`).

use crate::verify::VerifyError;

/// A failure answered as `{"stat":"FAIL","code":…,"message":…,"message_detail":…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: u32,
    pub(crate) message: &'static str,
    pub(crate) detail: Option<String>,
}

impl ApiError {
    fn new(status: u16, code: u32, message: &'static str, detail: Option<String>) -> Self {
        Self {
            status,
            code,
            message,
            detail,
        }
    }

    /// 400 / 40002; `detail` names the offending parameter, as Duo does.
    pub(crate) fn invalid(detail: &str) -> Self {
        Self::new(
            400,
            40002,
            "Invalid request parameters",
            Some(detail.to_owned()),
        )
    }

    pub(crate) fn not_found() -> Self {
        Self::new(404, 40401, "Resource not found", None)
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(405, 40501, "Method not allowed", None)
    }

    pub(crate) fn too_many_requests() -> Self {
        Self::new(429, 42901, "Too Many Requests", None)
    }

    /// 500 / 50001; also what Duo answers when a one-to-many limit is exceeded.
    pub(crate) fn internal(detail: Option<&str>) -> Self {
        Self::new(
            500,
            50001,
            "Unknown internal server error",
            detail.map(str::to_owned),
        )
    }
}

impl From<&VerifyError> for ApiError {
    fn from(e: &VerifyError) -> Self {
        match e {
            VerifyError::InvalidIkey => Self::new(
                401,
                40102,
                "Invalid integration key in request credentials",
                None,
            ),
            VerifyError::NonUtf8Params { where_ } => Self::invalid(where_),
            VerifyError::DateSkew => Self::new(
                401,
                40103,
                "Invalid signature in request credentials",
                Some("date skew".into()),
            ),
            VerifyError::BadDate => Self::new(
                401,
                40103,
                "Invalid signature in request credentials",
                Some("date".into()),
            ),
            VerifyError::MalformedAuthorization | VerifyError::BadSignature => {
                Self::new(401, 40103, "Invalid signature in request credentials", None)
            }
        }
    }
}
