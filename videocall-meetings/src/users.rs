//! Users (guests and identity-provider logins) and their login sessions.

use crate::{LoginSession, MAX_DISPLAY_NAME, MeetingError, Store, StoreError, User};

impl Store {
    /// A new guest user named `display_name` (id `guest-<random>`).
    pub async fn create_guest(&self, display_name: &str) -> Result<User, MeetingError> {
        let name = display_name_checked(display_name)?;
        let id = format!("guest-{}", crate::random_hex(8));
        sqlx::query(
            "INSERT INTO users (id, display_name, provider, subject, email, created_at) \
             VALUES ($1, $2, 'guest', $1, NULL, $3)",
        )
        .bind(&id)
        .bind(&name)
        .bind(crate::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(User {
            id,
            display_name: name,
            provider: "guest".to_owned(),
            email: None,
        })
    }

    /// The user the identity provider knows as `subject`, created on first login; their name
    /// and e-mail address are refreshed on each login. Their id is `oidc-<subject>`.
    pub async fn upsert_oidc_user(
        &self,
        subject: &str,
        display_name: &str,
        email: Option<&str>,
    ) -> Result<User, MeetingError> {
        let name = display_name_checked(display_name)?;
        let id = format!("oidc-{subject}");
        videocall_types::UserId::new(id.clone())
            .map_err(|e| MeetingError::Invalid(format!("identity provider subject: {e}")))?;
        sqlx::query(
            "INSERT INTO users (id, display_name, provider, subject, email, created_at) \
             VALUES ($1, $2, 'oidc', $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET display_name = $2, email = $4",
        )
        .bind(&id)
        .bind(&name)
        .bind(subject)
        .bind(email)
        .bind(crate::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(User {
            id,
            display_name: name,
            provider: "oidc".to_owned(),
            email: email.map(str::to_owned),
        })
    }

    /// A new login session for `user`, valid for `ttl_ms`.
    pub async fn create_login_session(
        &self,
        user: &User,
        ttl_ms: i64,
    ) -> Result<LoginSession, MeetingError> {
        let id = crate::random_hex(16);
        let now = crate::now_ms();
        let expires_at = now.saturating_add(ttl_ms);
        sqlx::query(
            "INSERT INTO login_sessions (id, user_id, created_at, expires_at, ended_at) \
             VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(&id)
        .bind(&user.id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(LoginSession {
            id,
            user: user.clone(),
            expires_at,
        })
    }

    /// The live (not ended, not expired) login session `id`, with its user.
    pub async fn login_session(&self, id: &str) -> Result<Option<LoginSession>, StoreError> {
        let sql = format!(
            "SELECT s.expires_at AS expires_at, {} FROM login_sessions s \
             JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.ended_at IS NULL AND s.expires_at > $2",
            User::COLUMNS
                .split(", ")
                .map(|c| format!("u.{c} AS {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(crate::now_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            use sqlx::Row;
            Ok(LoginSession {
                id: id.to_owned(),
                user: User::from_row(&row)?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends login session `id` (logout). Ending an unknown or ended session does nothing.
    pub async fn end_login_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE login_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
            .bind(id)
            .bind(crate::now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// `raw` trimmed, if it is a name one can show: 1..=[`MAX_DISPLAY_NAME`] characters, none of
/// them control characters.
pub(crate) fn display_name_checked(raw: &str) -> Result<String, MeetingError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(MeetingError::Invalid("display_name is empty".into()));
    }
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(MeetingError::Invalid(format!(
            "display_name is longer than {MAX_DISPLAY_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(MeetingError::Invalid(
            "display_name contains control characters".into(),
        ));
    }
    Ok(name.to_owned())
}
