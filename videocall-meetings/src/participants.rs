//! Participants: join, the waiting room (admit, admit all, reject), remove, leave, mute.
//! Every change takes the meeting's lock first (`lock_meeting`), so the participant cap and the
//! waiting-room cap are counted and kept under concurrency.

use sqlx::{Any, Transaction};
use videocall_types::MeetingId;

use crate::meetings::{count_status, is_host, lock_meeting, require_host};
use crate::users::display_name_checked;
use crate::{
    AdmitAll, Joined, MAX_WAITING, Meeting, MeetingError, MeetingState, Participant,
    ParticipantStatus, Role, Store, User,
};

impl Store {
    /// `user` asks to join meeting `id` as `display_name` (their own name when `None`), as an
    /// attendee or, with `observer`, to receive only. The owner and hosts are admitted at once;
    /// others wait when the meeting has a waiting room. Refused when the meeting has ended, is
    /// full, its waiting room is full, or a host turned the user away.
    pub async fn join(
        &self,
        user: &User,
        id: &MeetingId,
        display_name: Option<&str>,
        observer: bool,
    ) -> Result<Joined, MeetingError> {
        let name = display_name_checked(display_name.unwrap_or(&user.display_name))?;
        let mut tx = self.pool.begin().await?;
        let meeting = lock_meeting(&mut tx, id).await?;
        if meeting.state == MeetingState::Ended {
            return Err(MeetingError::Ended);
        }
        let existing = participant(&mut tx, id, &user.id).await?;
        match existing.as_ref().map(|p| p.status) {
            Some(ParticipantStatus::Admitted) => {
                let p = existing.expect("matched Some");
                return Ok(Joined::Admitted(p));
            }
            Some(ParticipantStatus::Waiting) => {
                return Ok(Joined::Waiting(existing.expect("matched Some")));
            }
            Some(ParticipantStatus::Rejected) => return Err(MeetingError::Rejected),
            Some(ParticipantStatus::Left) | None => {}
        }
        let host = is_host(&mut tx, &meeting, &user.id).await?
            || existing.as_ref().is_some_and(|p| p.role == Role::Host);
        let role = if host {
            Role::Host
        } else if observer {
            Role::Observer
        } else {
            Role::Attendee
        };
        let now = crate::now_ms();
        let joined = if meeting.waiting_room && !host {
            if count_status(&mut tx, id, ParticipantStatus::Waiting).await? >= MAX_WAITING {
                return Err(MeetingError::WaitingRoomFull);
            }
            let p = upsert(
                &mut tx,
                id,
                &user.id,
                &name,
                role,
                ParticipantStatus::Waiting,
                now,
            )
            .await?;
            Joined::Waiting(p)
        } else {
            take_place(&mut tx, &meeting, now).await?;
            let p = upsert(
                &mut tx,
                id,
                &user.id,
                &name,
                role,
                ParticipantStatus::Admitted,
                now,
            )
            .await?;
            Joined::Admitted(p)
        };
        tx.commit().await?;
        Ok(joined)
    }

    /// Those in meeting `id`'s waiting room, first come first; hosts only.
    pub async fn waiting(
        &self,
        actor: &str,
        id: &MeetingId,
    ) -> Result<Vec<Participant>, MeetingError> {
        let mut tx = self.pool.begin().await?;
        let meeting = read_meeting(&mut tx, id).await?;
        require_host(&mut tx, &meeting, actor).await?;
        let list = with_status(&mut tx, id, ParticipantStatus::Waiting).await?;
        tx.commit().await?;
        Ok(list)
    }

    /// Those admitted to meeting `id`; any admitted participant or host may ask.
    pub async fn participants(
        &self,
        actor: &str,
        id: &MeetingId,
    ) -> Result<Vec<Participant>, MeetingError> {
        let mut tx = self.pool.begin().await?;
        let meeting = read_meeting(&mut tx, id).await?;
        let admitted = participant(&mut tx, id, actor)
            .await?
            .is_some_and(|p| p.status == ParticipantStatus::Admitted);
        if !admitted && !is_host(&mut tx, &meeting, actor).await? {
            return Err(MeetingError::Forbidden(
                "only participants and hosts see who is in a meeting",
            ));
        }
        let list = with_status(&mut tx, id, ParticipantStatus::Admitted).await?;
        tx.commit().await?;
        Ok(list)
    }

    /// A host admits `user` from the waiting room of meeting `id`.
    pub async fn admit(
        &self,
        actor: &str,
        id: &MeetingId,
        user: &str,
    ) -> Result<Participant, MeetingError> {
        let mut tx = self.pool.begin().await?;
        let meeting = host_lock(&mut tx, id, actor).await?;
        let target = target(&mut tx, id, user, &[ParticipantStatus::Waiting]).await?;
        let now = crate::now_ms();
        take_place(&mut tx, &meeting, now).await?;
        let p = set_status(&mut tx, target, ParticipantStatus::Admitted, now).await?;
        tx.commit().await?;
        Ok(p)
    }

    /// A host admits everyone waiting in meeting `id`, first come first, while there is room.
    pub async fn admit_all(&self, actor: &str, id: &MeetingId) -> Result<AdmitAll, MeetingError> {
        let mut tx = self.pool.begin().await?;
        let meeting = host_lock(&mut tx, id, actor).await?;
        let waiting = with_status(&mut tx, id, ParticipantStatus::Waiting).await?;
        let admitted_now = count_status(&mut tx, id, ParticipantStatus::Admitted).await?;
        let room =
            usize::try_from((meeting.max_participants - admitted_now).max(0)).unwrap_or(usize::MAX);
        let now = crate::now_ms();
        let still_waiting = i64::try_from(waiting.len().saturating_sub(room)).unwrap_or(i64::MAX);
        let mut admitted = Vec::new();
        for p in waiting.into_iter().take(room) {
            admitted.push(set_status(&mut tx, p, ParticipantStatus::Admitted, now).await?);
        }
        if !admitted.is_empty() {
            mark_active(&mut tx, &meeting, now).await?;
        }
        tx.commit().await?;
        Ok(AdmitAll {
            admitted,
            still_waiting,
        })
    }

    /// A host turns `user` away from the waiting room of meeting `id`; they stay out.
    pub async fn reject(
        &self,
        actor: &str,
        id: &MeetingId,
        user: &str,
    ) -> Result<Participant, MeetingError> {
        let mut tx = self.pool.begin().await?;
        host_lock(&mut tx, id, actor).await?;
        let target = target(&mut tx, id, user, &[ParticipantStatus::Waiting]).await?;
        let p = set_status(
            &mut tx,
            target,
            ParticipantStatus::Rejected,
            crate::now_ms(),
        )
        .await?;
        tx.commit().await?;
        Ok(p)
    }

    /// A host removes `user` (admitted or waiting) from meeting `id`; they stay out. The owner
    /// cannot be removed.
    pub async fn remove(
        &self,
        actor: &str,
        id: &MeetingId,
        user: &str,
    ) -> Result<Participant, MeetingError> {
        let mut tx = self.pool.begin().await?;
        let meeting = host_lock(&mut tx, id, actor).await?;
        if meeting.is_owner(user) {
            return Err(MeetingError::Forbidden(
                "the meeting's owner cannot be removed",
            ));
        }
        let statuses = [ParticipantStatus::Admitted, ParticipantStatus::Waiting];
        let target = target(&mut tx, id, user, &statuses).await?;
        let now = crate::now_ms();
        let p = set_status(&mut tx, target, ParticipantStatus::Rejected, now).await?;
        idle_if_empty(&mut tx, id).await?;
        tx.commit().await?;
        Ok(p)
    }

    /// `user` leaves meeting `id` (or its waiting room); they may join again.
    pub async fn leave(&self, user: &str, id: &MeetingId) -> Result<Participant, MeetingError> {
        let mut tx = self.pool.begin().await?;
        lock_meeting(&mut tx, id).await?;
        let Some(me) = participant(&mut tx, id, user).await? else {
            return Err(MeetingError::NotFound("participant"));
        };
        let p = match me.status {
            ParticipantStatus::Admitted | ParticipantStatus::Waiting => {
                set_status(&mut tx, me, ParticipantStatus::Left, crate::now_ms()).await?
            }
            // Leaving twice, or after a host turned you away, changes nothing.
            ParticipantStatus::Left | ParticipantStatus::Rejected => me,
        };
        idle_if_empty(&mut tx, id).await?;
        tx.commit().await?;
        Ok(p)
    }

    /// A host may ask admitted `user` of meeting `id` to mute: the participant it concerns (the
    /// API then tells the relays).
    pub async fn ask_to_mute(
        &self,
        actor: &str,
        id: &MeetingId,
        user: &str,
    ) -> Result<Participant, MeetingError> {
        let mut tx = self.pool.begin().await?;
        let meeting = read_meeting(&mut tx, id).await?;
        require_host(&mut tx, &meeting, actor).await?;
        if meeting.state == MeetingState::Ended {
            return Err(MeetingError::Ended);
        }
        let target = target(&mut tx, id, user, &[ParticipantStatus::Admitted]).await?;
        tx.commit().await?;
        Ok(target)
    }

    /// `user`'s place in meeting `id`, if they ever joined it.
    pub async fn participant(
        &self,
        id: &MeetingId,
        user: &str,
    ) -> Result<Option<Participant>, MeetingError> {
        let mut tx = self.pool.begin().await?;
        let p = participant(&mut tx, id, user).await?;
        tx.commit().await?;
        Ok(p)
    }
}

/// The meeting without its lock (read-only operations).
async fn read_meeting(
    tx: &mut Transaction<'_, Any>,
    id: &MeetingId,
) -> Result<Meeting, MeetingError> {
    let sql = format!("SELECT {} FROM meetings WHERE id = $1", Meeting::COLUMNS);
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(row) => Ok(Meeting::from_row(&row)?),
        None => Err(MeetingError::NotFound("meeting")),
    }
}

/// The meeting's lock, for a host, on a meeting that has not ended.
async fn host_lock(
    tx: &mut Transaction<'_, Any>,
    id: &MeetingId,
    actor: &str,
) -> Result<Meeting, MeetingError> {
    let meeting = lock_meeting(tx, id).await?;
    require_host(tx, &meeting, actor).await?;
    if meeting.state == MeetingState::Ended {
        return Err(MeetingError::Ended);
    }
    Ok(meeting)
}

/// Takes one of the meeting's places, or refuses when it is full. Call under the meeting lock.
async fn take_place(
    tx: &mut Transaction<'_, Any>,
    meeting: &Meeting,
    now: i64,
) -> Result<(), MeetingError> {
    let id = MeetingId::new(meeting.id.clone())
        .map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
    if count_status(tx, &id, ParticipantStatus::Admitted).await? >= meeting.max_participants {
        return Err(MeetingError::Full(meeting.max_participants));
    }
    mark_active(tx, meeting, now).await
}

async fn mark_active(
    tx: &mut Transaction<'_, Any>,
    meeting: &Meeting,
    now: i64,
) -> Result<(), MeetingError> {
    sqlx::query(
        "UPDATE meetings SET state = 'active', started_at = COALESCE(started_at, $2) \
         WHERE id = $1",
    )
    .bind(&meeting.id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Back to idle when nobody is admitted any more.
async fn idle_if_empty(tx: &mut Transaction<'_, Any>, id: &MeetingId) -> Result<(), MeetingError> {
    if count_status(tx, id, ParticipantStatus::Admitted).await? == 0 {
        sqlx::query("UPDATE meetings SET state = 'idle' WHERE id = $1 AND state = 'active'")
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn participant(
    tx: &mut Transaction<'_, Any>,
    id: &MeetingId,
    user: &str,
) -> Result<Option<Participant>, MeetingError> {
    let sql = format!(
        "SELECT {} FROM participants WHERE meeting_id = $1 AND user_id = $2",
        Participant::COLUMNS
    );
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .bind(user)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.as_ref().map(Participant::from_row).transpose()?)
}

/// `user`'s participant record if its status is one of `statuses`, else not found.
async fn target(
    tx: &mut Transaction<'_, Any>,
    id: &MeetingId,
    user: &str,
    statuses: &[ParticipantStatus],
) -> Result<Participant, MeetingError> {
    match participant(tx, id, user).await? {
        Some(p) if statuses.contains(&p.status) => Ok(p),
        _ => Err(MeetingError::NotFound("participant")),
    }
}

async fn with_status(
    tx: &mut Transaction<'_, Any>,
    id: &MeetingId,
    status: ParticipantStatus,
) -> Result<Vec<Participant>, MeetingError> {
    let sql = format!(
        "SELECT {} FROM participants WHERE meeting_id = $1 AND status = $2 \
         ORDER BY joined_at, user_id",
        Participant::COLUMNS
    );
    let rows = sqlx::query(&sql)
        .bind(id.as_str())
        .bind(status.as_str())
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows
        .iter()
        .map(Participant::from_row)
        .collect::<Result<_, _>>()?)
}

async fn upsert(
    tx: &mut Transaction<'_, Any>,
    id: &MeetingId,
    user: &str,
    name: &str,
    role: Role,
    status: ParticipantStatus,
    now: i64,
) -> Result<Participant, MeetingError> {
    let admitted_at = (status == ParticipantStatus::Admitted).then_some(now);
    let sql = format!(
        "INSERT INTO participants (meeting_id, user_id, display_name, role, status, joined_at, \
         admitted_at, left_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $6) \
         ON CONFLICT (meeting_id, user_id) DO UPDATE SET display_name = excluded.display_name, \
         role = excluded.role, status = excluded.status, joined_at = excluded.joined_at, \
         admitted_at = excluded.admitted_at, left_at = NULL, updated_at = excluded.updated_at \
         RETURNING {}",
        Participant::COLUMNS
    );
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .bind(user)
        .bind(name)
        .bind(role.as_str())
        .bind(status.as_str())
        .bind(now)
        .bind(admitted_at)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Participant::from_row(&row)?)
}

async fn set_status(
    tx: &mut Transaction<'_, Any>,
    mut p: Participant,
    status: ParticipantStatus,
    now: i64,
) -> Result<Participant, MeetingError> {
    let admitted = status == ParticipantStatus::Admitted;
    sqlx::query(
        "UPDATE participants SET status = $3, updated_at = $4, \
         admitted_at = CASE WHEN $5 = 1 THEN $4 ELSE admitted_at END, \
         left_at = CASE WHEN $5 = 1 THEN left_at ELSE $4 END \
         WHERE meeting_id = $1 AND user_id = $2",
    )
    .bind(&p.meeting_id)
    .bind(&p.user_id)
    .bind(status.as_str())
    .bind(now)
    .bind(i64::from(admitted))
    .execute(&mut **tx)
    .await?;
    if admitted {
        p.admitted_at = Some(now);
    } else {
        p.left_at = Some(now);
    }
    p.status = status;
    Ok(p)
}
