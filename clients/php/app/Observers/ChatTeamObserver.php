<?php

declare(strict_types=1);

namespace App\Observers;

use App\Services\ChatBackendClient;

/**
 * One chat group per team (`Team::observe(ChatTeamObserver::class)`): created with the team
 * (its owner owns the group, its members join), renamed with it, deleted with it. The group id
 * is kept on the team (`chat_group_id`, a nullable column you add).
 */
final class ChatTeamObserver
{
    public function __construct(private readonly ChatBackendClient $chat)
    {
    }

    /** @param object{id: int, name: string, owner_id: int, member_ids: list<int>, chat_group_id: ?int} $team */
    public function created(object $team): void
    {
        $group = $this->chat->createGroup((int) $team->owner_id, (string) $team->name, $team->member_ids, true);
        $team->chat_group_id = $group['id'];
        $this->chat->postMessage($group['id'], "Welcome to {$team->name}!", 0, "team-{$team->id}-welcome");
    }

    /** @param object{name: string, chat_group_id: ?int} $team */
    public function updated(object $team): void
    {
        if ($team->chat_group_id !== null) {
            $this->chat->updateGroup((int) $team->chat_group_id, ['name' => (string) $team->name]);
        }
    }

    /** @param object{chat_group_id: ?int} $team */
    public function deleted(object $team): void
    {
        if ($team->chat_group_id !== null) {
            $this->chat->deleteGroup((int) $team->chat_group_id);
        }
    }
}
