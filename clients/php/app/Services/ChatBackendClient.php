<?php

declare(strict_types=1);

namespace App\Services;

use App\Services\Chat\ChatBackendTokenIssuer;
use App\Services\Chat\GrpcException;
use App\Services\Chat\GrpcWebTransport;
use Chat\BackendBanUserRequest;
use Chat\BackendCreateGroupRequest;
use Chat\BackendGroup;
use Chat\BackendGroupRef;
use Chat\BackendListModerationRequest;
use Chat\BackendMembersRequest;
use Chat\BackendMembersResponse;
use Chat\BackendModerateRequest;
use Chat\BackendModeration;
use Chat\BackendModeration\Kind;
use Chat\BackendModerationList;
use Chat\BackendPosted;
use Chat\BackendPostRequest;
use Chat\BackendUpdateGroupRequest;
use Chat\BackendUser;
use Chat\BackendUserRef;
use Chat\BackendUserResult;
use Chat\ExportChunk;
use Chat\UpsertUsersRequest;
use Chat\UpsertUsersResponse;

/**
 * The app backend's API (chat.ChatBackend): what your Laravel server calls, never a browser.
 * It acts on any group without being a member, with a backend token (ChatBackendTokenIssuer).
 *
 *     $backend = new ChatBackendClient(
 *         new GrpcWebTransport(config('services.chat.backend_url'), 10.0, null, GrpcWebTransport::BACKEND_SERVICE),
 *         new ChatBackendTokenIssuer(config('services.chat.backend_secret')));
 *
 * `backend_url` is an Envoy listener with `backend_api` on that only your servers reach (the
 * public listener does not route chat.ChatBackend). Errors are GrpcException subclasses.
 */
final class ChatBackendClient
{
    public function __construct(
        private readonly GrpcWebTransport $transport,
        private readonly ChatBackendTokenIssuer $tokens,
        private readonly int $retries = 2,
    ) {
    }

    /**
     * Create or update up to 100 users; returns the ids whose stored profile changed.
     *
     * @param list<array{id: int, name?: string, avatar?: string, email?: string, custom?: array<string, mixed>}> $users
     * @return list<int>
     */
    public function upsertUsers(array $users): array
    {
        $request = new UpsertUsersRequest(['users' => array_map(static fn (array $u): BackendUser => new BackendUser([
            'id' => (int) $u['id'],
            'name' => (string) ($u['name'] ?? ''),
            'avatar' => (string) ($u['avatar'] ?? ''),
            'email' => (string) ($u['email'] ?? ''),
            'custom_json' => isset($u['custom']) ? json_encode($u['custom'], JSON_THROW_ON_ERROR | JSON_UNESCAPED_UNICODE) : '',
        ]), $users)]);
        /** @var UpsertUsersResponse $r */
        $r = $this->call('UpsertUsers', $request, UpsertUsersResponse::class, $this->retries);
        return array_map('intval', iterator_to_array($r->getChangedIds()));
    }

    /** Anonymise a user and remove them from every group; returns the groups left. */
    public function deleteUser(int $userId): int
    {
        /** @var BackendUserResult $r */
        $r = $this->call('DeleteUser', new BackendUserRef(['user_id' => $userId]), BackendUserResult::class, $this->retries);
        return $r->getGroupsLeft();
    }

    /**
     * GDPR erasure (idempotent, so retried on transient errors).
     *
     * @return array{groups_left: int, messages: int, attachments: int}
     */
    public function eraseUser(int $userId): array
    {
        /** @var BackendUserResult $r */
        $r = $this->call('EraseUser', new BackendUserRef(['user_id' => $userId]), BackendUserResult::class, $this->retries);
        return ['groups_left' => $r->getGroupsLeft(), 'messages' => $r->getMessages(), 'attachments' => $r->getAttachments()];
    }

    /**
     * Everything stored about a user, one record per entry.
     *
     * @return list<array<string, mixed>>
     */
    public function exportUser(int $userId): array
    {
        $records = [];
        foreach ($this->transport->serverStream('ExportUser', new BackendUserRef(['user_id' => $userId]), ExportChunk::class, $this->metadata()) as $chunk) {
            foreach (explode("\n", rtrim($chunk->getJsonLines(), "\n")) as $line) {
                if ($line !== '') {
                    $records[] = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
                }
            }
        }
        return $records;
    }

    /**
     * @param list<int> $memberIds plain members besides the owner
     * @return array<string, mixed>
     */
    public function createGroup(int $ownerId, string $name, array $memberIds = [], bool $inviteOnly = true, string $description = '', string $avatar = ''): array
    {
        $request = new BackendCreateGroupRequest([
            'owner_id' => $ownerId, 'name' => $name, 'member_ids' => array_map('intval', $memberIds),
            'invite_only' => $inviteOnly, 'description' => $description, 'avatar' => $avatar,
        ]);
        /** @var BackendGroup $g */
        $g = $this->call('CreateGroup', $request, BackendGroup::class);
        return self::group($g);
    }

    /**
     * @param array{name?: string, description?: string, avatar?: string, invite_only?: bool, archived?: bool} $changes
     * @return array<string, mixed>
     */
    public function updateGroup(int $groupId, array $changes): array
    {
        /** @var BackendGroup $g */
        $g = $this->call('UpdateGroup', new BackendUpdateGroupRequest(['group_id' => $groupId] + $changes), BackendGroup::class, $this->retries);
        return self::group($g);
    }

    public function deleteGroup(int $groupId): void
    {
        $this->call('DeleteGroup', new BackendGroupRef(['group_id' => $groupId]), BackendUserResult::class);
    }

    /** @param list<int> $userIds @return list<int> the users added */
    public function addMembers(int $groupId, array $userIds): array
    {
        return $this->members('AddMembers', $groupId, $userIds);
    }

    /** @param list<int> $userIds @return list<int> the users removed */
    public function removeMembers(int $groupId, array $userIds): array
    {
        return $this->members('RemoveMembers', $groupId, $userIds);
    }

    /**
     * A SYSTEM message from the backend ($actAs = 0) or a message on behalf of member $actAs,
     * recorded as posted by the backend. Retried with the same idempotency key.
     *
     * @return array{id: int, seq: int, duplicate: bool}
     */
    public function postMessage(int $groupId, string $content, int $actAs = 0, ?string $clientMsgId = null): array
    {
        $request = new BackendPostRequest([
            'group_id' => $groupId, 'content' => $content, 'act_as' => $actAs,
            'client_msg_id' => $clientMsgId ?? bin2hex(random_bytes(16)),
        ]);
        /** @var BackendPosted $p */
        $p = $this->call('PostMessage', $request, BackendPosted::class, $this->retries);
        return ['id' => (int) $p->getId(), 'seq' => (int) $p->getSeq(), 'duplicate' => $p->getDuplicate()];
    }

    /**
     * @param string $kind BAN, UNBAN, MUTE or UNMUTE
     * @return array<string, mixed>
     */
    public function moderateMember(int $groupId, int $userId, string $kind, string $reason = '', int $durationSeconds = 0): array
    {
        $request = new BackendModerateRequest([
            'group_id' => $groupId, 'user_id' => $userId, 'kind' => Kind::value($kind),
            'reason' => $reason, 'duration_seconds' => $durationSeconds,
        ]);
        /** @var BackendModeration $a */
        $a = $this->call('ModerateMember', $request, BackendModeration::class);
        return self::action($a);
    }

    /** @return array<string, mixed> */
    public function banUser(int $userId, string $reason = '', int $durationSeconds = 0): array
    {
        /** @var BackendModeration $a */
        $a = $this->call('BanUser', new BackendBanUserRequest(['user_id' => $userId, 'reason' => $reason, 'duration_seconds' => $durationSeconds]), BackendModeration::class, $this->retries);
        return self::action($a);
    }

    /** @return array<string, mixed> */
    public function unbanUser(int $userId): array
    {
        /** @var BackendModeration $a */
        $a = $this->call('UnbanUser', new BackendUserRef(['user_id' => $userId]), BackendModeration::class, $this->retries);
        return self::action($a);
    }

    /** @return list<array<string, mixed>> newest first; $groupId 0: backend-wide bans */
    public function listModeration(int $groupId, int $limit = 50, int $beforeId = 0): array
    {
        /** @var BackendModerationList $r */
        $r = $this->call('ListModeration', new BackendListModerationRequest(['group_id' => $groupId, 'limit' => $limit, 'before_id' => $beforeId]), BackendModerationList::class, $this->retries);
        $out = [];
        foreach ($r->getActions() as $a) {
            $out[] = self::action($a);
        }
        return $out;
    }

    /** @param list<int> $userIds @return list<int> */
    private function members(string $method, int $groupId, array $userIds): array
    {
        /** @var BackendMembersResponse $r */
        $r = $this->call($method, new BackendMembersRequest(['group_id' => $groupId, 'user_ids' => array_map('intval', $userIds)]), BackendMembersResponse::class, $this->retries);
        return array_map('intval', iterator_to_array($r->getChangedIds()));
    }

    /** @return array<string, string> */
    private function metadata(): array
    {
        return ['authorization' => 'Bearer ' . $this->tokens->token()];
    }

    /**
     * @param class-string<\Google\Protobuf\Internal\Message> $responseClass
     */
    private function call(string $method, \Google\Protobuf\Internal\Message $request, string $responseClass, int $retries = 0): \Google\Protobuf\Internal\Message
    {
        for ($attempt = 0; ; $attempt++) {
            try {
                return $this->transport->unary($method, $request, $responseClass, $this->metadata());
            } catch (GrpcException $e) {
                if ($attempt >= $retries || !$e->isTransient()) {
                    throw $e;
                }
                usleep((int) (100_000 * 2 ** $attempt));
            }
        }
    }

    /** @return array<string, mixed> */
    private static function group(BackendGroup $g): array
    {
        return [
            'id' => (int) $g->getId(), 'name' => $g->getName(), 'description' => $g->getDescription(),
            'avatar' => $g->getAvatar(), 'invite_only' => $g->getInviteOnly(), 'archived' => $g->getArchived(),
            'member_count' => $g->getMemberCount(), 'created_by' => (int) $g->getCreatedBy(),
        ];
    }

    /** @return array<string, mixed> */
    private static function action(BackendModeration $a): array
    {
        return [
            'id' => (int) $a->getId(), 'group_id' => (int) $a->getGroupId(), 'user_id' => (int) $a->getUserId(),
            'actor_id' => (int) $a->getActorId(), 'kind' => Kind::name($a->getKind()), 'reason' => $a->getReason(),
            'expires_at_ms' => (int) $a->getExpiresAtMs(),
        ];
    }
}
