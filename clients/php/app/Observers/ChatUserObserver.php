<?php

declare(strict_types=1);

namespace App\Observers;

use App\Services\ChatBackendClient;

/**
 * Keeps the chat's user directory in step with your users (register in a service provider:
 * `User::observe(ChatUserObserver::class)`). Names are then right before a user first opens
 * the chat, and never stale. Deleting a user erases them from the chat (GDPR).
 *
 * In production, run these in a queued job (ShouldQueue) so a chat outage never blocks a save;
 * every call here is idempotent, so the queue's retries are safe.
 */
final class ChatUserObserver
{
    public function __construct(private readonly ChatBackendClient $chat)
    {
    }

    /** @param object{id: int, name: string, email?: string, avatar_url?: ?string} $user */
    public function saved(object $user): void
    {
        $this->chat->upsertUsers([[
            'id' => (int) $user->id,
            'name' => (string) $user->name,
            'email' => (string) ($user->email ?? ''),
            'avatar' => (string) ($user->avatar_url ?? ''),
        ]]);
    }

    /** @param object{id: int} $user */
    public function deleted(object $user): void
    {
        $this->chat->eraseUser((int) $user->id);
    }
}
