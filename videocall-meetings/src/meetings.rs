//! Meetings: create, read, change settings, end; the meeting lock and the host check that
//! every change goes through.

use sqlx::{Any, Transaction};
use videocall_types::MeetingId;

use crate::{
    Access, MAX_PARTICIPANTS_LIMIT, Meeting, MeetingError, MeetingState, NewMeeting,
    ParticipantStatus, Role, SettingsPatch, Store, StoreError, User,
};

impl Store {
    /// Creates a meeting owned by `owner` (who is its host).
    pub async fn create_meeting(
        &self,
        owner: &User,
        new: NewMeeting,
    ) -> Result<Meeting, MeetingError> {
        check_max_participants(new.max_participants)?;
        self.check_access(new.access)?;
        let id = match new.id {
            Some(id) => id.as_str().to_owned(),
            None => crate::random_hex(6),
        };
        let now = crate::now_ms();
        let inserted = sqlx::query(
            "INSERT INTO meetings (id, owner_id, state, access, waiting_room, e2ee_required, \
             max_participants, created_at, started_at, ended_at, updated_at) \
             VALUES ($1, $2, 'idle', $3, $4, $5, $6, $7, NULL, NULL, $7) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(&owner.id)
        .bind(new.access.as_str())
        .bind(i64::from(new.waiting_room))
        .bind(i64::from(new.e2ee_required))
        .bind(new.max_participants)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(MeetingError::AlreadyExists);
        }
        tracing::info!(meeting = %id, owner = %owner.id, "meeting created");
        self.meeting(&id)
            .await?
            .ok_or(MeetingError::NotFound("meeting"))
    }

    /// The meeting `id`, if there is one.
    pub async fn meeting(&self, id: &str) -> Result<Option<Meeting>, StoreError> {
        let sql = format!("SELECT {} FROM meetings WHERE id = $1", Meeting::COLUMNS);
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Meeting::from_row).transpose()
    }

    /// Changes the settings of meeting `id`; only a host may.
    pub async fn update_settings(
        &self,
        actor: &str,
        id: &MeetingId,
        patch: SettingsPatch,
    ) -> Result<Meeting, MeetingError> {
        if let Some(max) = patch.max_participants {
            check_max_participants(max)?;
        }
        if let Some(access) = patch.access {
            self.check_access(access)?;
        }
        let mut tx = self.pool.begin().await?;
        let mut meeting = lock_meeting(&mut tx, id).await?;
        require_host(&mut tx, &meeting, actor).await?;
        if meeting.state == MeetingState::Ended {
            return Err(MeetingError::Ended);
        }
        if let Some(max) = patch.max_participants {
            let admitted = count_status(&mut tx, id, ParticipantStatus::Admitted).await?;
            if max < admitted {
                return Err(MeetingError::Invalid(format!(
                    "max_participants {max} is below the {admitted} admitted now"
                )));
            }
            meeting.max_participants = max;
        }
        meeting.access = patch.access.unwrap_or(meeting.access);
        meeting.waiting_room = patch.waiting_room.unwrap_or(meeting.waiting_room);
        meeting.e2ee_required = patch.e2ee_required.unwrap_or(meeting.e2ee_required);
        sqlx::query(
            "UPDATE meetings SET access = $2, waiting_room = $3, e2ee_required = $4, \
             max_participants = $5 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(meeting.access.as_str())
        .bind(i64::from(meeting.waiting_room))
        .bind(i64::from(meeting.e2ee_required))
        .bind(meeting.max_participants)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(meeting)
    }

    /// Ends meeting `id` for everyone; only a host may. Those admitted or waiting have left.
    /// Ending an ended meeting returns it unchanged.
    pub async fn end_meeting(&self, actor: &str, id: &MeetingId) -> Result<Meeting, MeetingError> {
        let mut tx = self.pool.begin().await?;
        let mut meeting = lock_meeting(&mut tx, id).await?;
        require_host(&mut tx, &meeting, actor).await?;
        if meeting.state == MeetingState::Ended {
            return Ok(meeting);
        }
        let now = crate::now_ms();
        sqlx::query("UPDATE meetings SET state = 'ended', ended_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE participants SET status = 'left', left_at = $2, updated_at = $2 \
             WHERE meeting_id = $1 AND status IN ('admitted', 'waiting')",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(meeting = %id, by = actor, "meeting ended");
        meeting.state = MeetingState::Ended;
        meeting.ended_at = Some(now);
        Ok(meeting)
    }

    /// Refuses an open meeting when this node does not allow them.
    fn check_access(&self, access: Access) -> Result<(), MeetingError> {
        if access == Access::Open && !self.config.allow_open {
            return Err(MeetingError::Invalid(
                "open meetings are disabled on this node (OPEN_MEETINGS=false)".into(),
            ));
        }
        Ok(())
    }
}

fn check_max_participants(max: i64) -> Result<(), MeetingError> {
    if !(1..=MAX_PARTICIPANTS_LIMIT).contains(&max) {
        return Err(MeetingError::Invalid(format!(
            "max_participants must be 1..={MAX_PARTICIPANTS_LIMIT}, not {max}"
        )));
    }
    Ok(())
}

/// Takes meeting `id`'s lock for the rest of `tx` and returns the meeting. It must be the first
/// statement of every write transaction: a write first makes PostgreSQL lock the row (and
/// re-read it after waiting) and SQLite take its write lock, so two transactions on one meeting
/// never interleave, and SQLite never has to upgrade a read lock (which fails at once instead
/// of waiting).
pub(crate) async fn lock_meeting(
    tx: &mut Transaction<'_, Any>,
    id: &MeetingId,
) -> Result<Meeting, MeetingError> {
    let sql = format!(
        "UPDATE meetings SET updated_at = $2 WHERE id = $1 RETURNING {}",
        Meeting::COLUMNS
    );
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .bind(crate::now_ms())
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(row) => Ok(Meeting::from_row(&row)?),
        None => Err(MeetingError::NotFound("meeting")),
    }
}

/// Whether `user` may act as host of `meeting`: its owner, or an admitted host participant.
pub(crate) async fn is_host(
    tx: &mut Transaction<'_, Any>,
    meeting: &Meeting,
    user: &str,
) -> Result<bool, MeetingError> {
    if meeting.is_owner(user) {
        return Ok(true);
    }
    let row = sqlx::query(
        "SELECT 1 AS one FROM participants WHERE meeting_id = $1 AND user_id = $2 \
         AND role = $3 AND status = 'admitted'",
    )
    .bind(&meeting.id)
    .bind(user)
    .bind(Role::Host.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

/// [`is_host`], or [`MeetingError::Forbidden`].
pub(crate) async fn require_host(
    tx: &mut Transaction<'_, Any>,
    meeting: &Meeting,
    user: &str,
) -> Result<(), MeetingError> {
    if is_host(tx, meeting, user).await? {
        Ok(())
    } else {
        Err(MeetingError::Forbidden(
            "only the meeting's owner or a host may do this",
        ))
    }
}

/// Participants of meeting `id` with `status`.
pub(crate) async fn count_status(
    tx: &mut Transaction<'_, Any>,
    id: &MeetingId,
    status: ParticipantStatus,
) -> Result<i64, MeetingError> {
    use sqlx::Row;
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM participants WHERE meeting_id = $1 AND status = $2")
            .bind(id.as_str())
            .bind(status.as_str())
            .fetch_one(&mut **tx)
            .await?;
    Ok(row.try_get::<i64, _>("n")?)
}
