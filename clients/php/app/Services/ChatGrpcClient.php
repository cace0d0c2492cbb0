<?php

declare(strict_types=1);

namespace App\Services;

use App\Services\Chat\GrpcException;
use App\Services\Chat\GrpcWebTransport;
use Chat\CreateGroupRequest;
use Chat\GetGroupMembersRequest;
use Chat\GetHistoryRequest;
use Chat\Group;
use Chat\GroupMembersResponse;
use Chat\JoinGroupRequest;
use Chat\JoinGroupResponse;
use Chat\LeaveGroupRequest;
use Chat\LeaveGroupResponse;
use Chat\ListMyGroupsRequest;
use Chat\ListMyGroupsResponse;
use Chat\MessageHistoryResponse;
use Chat\MessageResponse;
use Chat\MessageType;
use Chat\SendMessageRequest;

/**
 * The chat service, called on behalf of ONE user: the one whose JWT `$token` returns.
 *
 * Unlike the plan's Step 6 wrapper, nothing here takes a user id for the acting user: the
 * service reads identity from the token only (`created_by` / `user_id` fields stay 0), so a
 * request parameter can never make one user act as another.
 *
 *     $chat = new ChatGrpcClient(new GrpcWebTransport(config('services.chat.url')),
 *                                fn () => auth('api')->tokenById(auth()->id()));
 */
final class ChatGrpcClient
{
    /** @var \Closure(): string */
    private \Closure $token;

    /** @param callable(): string $token returns the JWT of the user the calls are made for */
    public function __construct(
        private readonly GrpcWebTransport $transport,
        callable $token,
        private readonly int $retries = 2,
    ) {
        $this->token = \Closure::fromCallable($token);
    }

    /**
     * @param list<int> $memberIds users added besides the caller (who becomes the owner)
     * @return array<string, mixed>
     */
    public function createGroup(string $name, string $description = '', array $memberIds = [], bool $inviteOnly = false): array
    {
        $request = new CreateGroupRequest([
            'name' => $name,
            'description' => $description,
            'member_ids' => array_map('intval', $memberIds),
            'invite_only' => $inviteOnly,
        ]);
        /** @var Group $group */
        $group = $this->call('CreateGroup', $request, Group::class);
        return self::group($group);
    }

    /** @return list<array<string, mixed>> */
    public function myGroups(): array
    {
        /** @var ListMyGroupsResponse $response */
        $response = $this->call('ListMyGroups', new ListMyGroupsRequest(), ListMyGroupsResponse::class);
        $out = [];
        foreach ($response->getGroups() as $group) {
            $out[] = self::group($group);
        }
        return $out;
    }

    public function join(int $groupId): bool
    {
        /** @var JoinGroupResponse $r */
        $r = $this->call('JoinGroup', new JoinGroupRequest(['group_id' => $groupId]), JoinGroupResponse::class);
        return $r->getSuccess();
    }

    public function leave(int $groupId): bool
    {
        /** @var LeaveGroupResponse $r */
        $r = $this->call('LeaveGroup', new LeaveGroupRequest(['group_id' => $groupId]), LeaveGroupResponse::class);
        return $r->getSuccess();
    }

    /** @return list<array<string, mixed>> */
    public function members(int $groupId): array
    {
        /** @var GroupMembersResponse $r */
        $r = $this->call('GetGroupMembers', new GetGroupMembersRequest(['group_id' => $groupId]), GroupMembersResponse::class);
        $out = [];
        foreach ($r->getMembers() as $u) {
            $out[] = ['id' => (int) $u->getId(), 'name' => $u->getName(), 'online' => $u->getOnline(), 'role' => $u->getRole()];
        }
        return $out;
    }

    /**
     * Posts a text message. `$clientMsgId` is the idempotency key: pass the same one when you
     * retry (e.g. a resubmitted form) and the service returns the stored message instead of
     * posting twice. Transient failures are retried here with the same key.
     *
     * @return array<string, mixed>
     */
    public function sendMessage(int $groupId, string $content, ?string $clientMsgId = null, int $replyToId = 0): array
    {
        $request = new SendMessageRequest([
            'group_id' => $groupId,
            'content' => $content,
            'type' => MessageType::TEXT,
            'client_msg_id' => $clientMsgId ?? self::uuid(),
            'reply_to_id' => $replyToId,
        ]);
        /** @var MessageResponse $message */
        $message = $this->call('SendMessage', $request, MessageResponse::class, $this->retries);
        return self::message($message);
    }

    /**
     * Newest page first (`$beforeId` = 0), each page in chronological order.
     *
     * @return array{messages: list<array<string, mixed>>, has_more: bool}
     */
    public function history(int $groupId, int $limit = 50, int $beforeId = 0): array
    {
        $request = new GetHistoryRequest(['group_id' => $groupId, 'limit' => $limit, 'before_id' => $beforeId]);
        /** @var MessageHistoryResponse $page */
        $page = $this->call('GetMessageHistory', $request, MessageHistoryResponse::class, $this->retries);
        $messages = [];
        foreach ($page->getMessages() as $m) {
            $messages[] = self::message($m);
        }
        return ['messages' => $messages, 'has_more' => $page->getHasMore()];
    }

    /**
     * @param class-string<\Google\Protobuf\Internal\Message> $responseClass
     */
    private function call(string $method, \Google\Protobuf\Internal\Message $request, string $responseClass, int $retries = 0): \Google\Protobuf\Internal\Message
    {
        $metadata = ['authorization' => 'Bearer ' . ($this->token)()];
        for ($attempt = 0; ; $attempt++) {
            try {
                return $this->transport->unary($method, $request, $responseClass, $metadata);
            } catch (GrpcException $e) {
                if ($attempt >= $retries || !$e->isTransient()) {
                    throw $e;
                }
                usleep((int) (100_000 * 2 ** $attempt));
            }
        }
    }

    /** @return array<string, mixed> */
    public static function group(Group $g): array
    {
        return [
            'id' => (int) $g->getId(),
            'name' => $g->getName(),
            'description' => $g->getDescription(),
            'member_ids' => array_map('intval', iterator_to_array($g->getMemberIds())),
            'member_count' => $g->getMemberCount(),
            'created_by' => (int) $g->getCreatedBy(),
            'created_at' => (int) $g->getCreatedAt(),
            'last_seq' => (int) $g->getLastSeq(),
            'unread_count' => (int) $g->getUnreadCount(),
            'my_role' => $g->getMyRole(),
        ];
    }

    /** @return array<string, mixed> */
    public static function message(MessageResponse $m): array
    {
        return [
            'id' => (int) $m->getId(),
            'group_id' => (int) $m->getGroupId(),
            'seq' => (int) $m->getSeq(),
            'user_id' => (int) $m->getUserId(),
            'user_name' => $m->getUserName(),
            'content' => $m->getContent(),
            'type' => MessageType::name($m->getType()),
            'client_msg_id' => $m->getClientMsgId(),
            'timestamp_ms' => (int) $m->getTimestampMs(),
        ];
    }

    private static function uuid(): string
    {
        $b = random_bytes(16);
        $b[6] = chr((ord($b[6]) & 0x0f) | 0x40);
        $b[8] = chr((ord($b[8]) & 0x3f) | 0x80);
        return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($b), 4));
    }
}
