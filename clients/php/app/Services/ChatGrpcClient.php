<?php

declare(strict_types=1);

namespace App\Services;

use App\Services\Chat\GrpcException;
use App\Services\Chat\GrpcWebTransport;
use Chat\CreateGroupRequest;
use Chat\GetGroupMembersRequest;
use Chat\GetHistoryRequest;
use Chat\GetThreadRequest;
use Chat\Group;
use Chat\GroupMembersResponse;
use Chat\JoinGroupRequest;
use Chat\JoinGroupResponse;
use Chat\LeaveGroupRequest;
use Chat\LeaveGroupResponse;
use Chat\ListMyGroupsRequest;
use Chat\ListMyGroupsResponse;
use Chat\ListPinnedRequest;
use Chat\MarkReadRequest;
use Chat\MarkReadResponse;
use Chat\MarkThreadReadRequest;
use Chat\MarkUnreadRequest;
use Chat\MarkUnreadResponse;
use Chat\MessageHistoryResponse;
use Chat\MessageResponse;
use Chat\MessageType;
use Chat\PinMessageRequest;
use Chat\SearchMessagesRequest;
use Chat\SearchMessagesResponse;
use Chat\SendMessageRequest;
use Chat\ThreadReadResponse;
use Chat\ThreadReplyRequest;
use Chat\ThreadResponse;

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
     * Replies in the thread under `$parentId` (or the thread a reply belongs to). With
     * `$alsoInGroup` the reply shows in the group's timeline too. Idempotent like sendMessage.
     *
     * @return array<string, mixed>
     */
    public function replyInThread(int $parentId, string $content, bool $alsoInGroup = false, ?string $clientMsgId = null): array
    {
        $request = new ThreadReplyRequest([
            'parent_id' => $parentId,
            'content' => $content,
            'also_in_group' => $alsoInGroup,
            'client_msg_id' => $clientMsgId ?? self::uuid(),
        ]);
        /** @var MessageResponse $message */
        $message = $this->call('ReplyInThread', $request, MessageResponse::class, $this->retries);
        return self::message($message);
    }

    /**
     * The parent (a tombstone once deleted) and its replies in order, from `$afterSeq` on.
     *
     * @return array{parent: array<string, mixed>, replies: list<array<string, mixed>>, has_more: bool, unread_count: int}
     */
    public function thread(int $parentId, int $afterSeq = 0, int $limit = 50): array
    {
        $request = new GetThreadRequest(['parent_id' => $parentId, 'after_seq' => $afterSeq, 'limit' => $limit]);
        /** @var ThreadResponse $r */
        $r = $this->call('GetThread', $request, ThreadResponse::class, $this->retries);
        $replies = [];
        foreach ($r->getReplies() as $m) {
            $replies[] = self::message($m);
        }
        $parent = $r->getParent();
        return [
            'parent' => $parent === null ? [] : self::message($parent),
            'replies' => $replies,
            'has_more' => $r->getHasMore(),
            'unread_count' => (int) $r->getUnreadCount(),
        ];
    }

    /** @return array{read_seq: int, unread_count: int, group_thread_unread: int} */
    public function markThreadRead(int $parentId, int $seq = 0): array
    {
        /** @var ThreadReadResponse $r */
        $r = $this->call('MarkThreadRead', new MarkThreadReadRequest(['parent_id' => $parentId, 'seq' => $seq]), ThreadReadResponse::class);
        return ['read_seq' => (int) $r->getReadSeq(), 'unread_count' => (int) $r->getUnreadCount(), 'group_thread_unread' => (int) $r->getGroupThreadUnread()];
    }

    /**
     * Full-text search over the user's groups (`$groupId` 0) or one of them, best match first.
     * `snippet` is plain text: escape it (e()) before display; `highlights` are
     * [offset, length] pairs in Unicode code points (mb_substr) to wrap in <mark>.
     *
     * @return array{hits: list<array<string, mixed>>, next_page_token: string}
     */
    public function search(string $query, int $groupId = 0, int $limit = 20, string $pageToken = ''): array
    {
        $request = new SearchMessagesRequest(['query' => $query, 'group_id' => $groupId, 'limit' => $limit, 'page_token' => $pageToken]);
        /** @var SearchMessagesResponse $r */
        $r = $this->call('SearchMessages', $request, SearchMessagesResponse::class, $this->retries);
        $hits = [];
        foreach ($r->getHits() as $hit) {
            $marks = [];
            foreach ($hit->getHighlights() as $h) {
                $marks[] = [$h->getOffset(), $h->getLength()];
            }
            $message = $hit->getMessage();
            $hits[] = [
                'message' => $message === null ? [] : self::message($message),
                'snippet' => $hit->getSnippet(),
                'highlights' => $marks,
                'rank' => $hit->getRank(),
            ];
        }
        return ['hits' => $hits, 'next_page_token' => $r->getNextPageToken()];
    }

    /** Owners/admins pin (at most 50 per group) or unpin a message. @return array<string, mixed> */
    public function pin(int $messageId, bool $pinned = true): array
    {
        /** @var MessageResponse $m */
        $m = $this->call($pinned ? 'PinMessage' : 'UnpinMessage', new PinMessageRequest(['message_id' => $messageId]), MessageResponse::class);
        return self::message($m);
    }

    /** The group's pinned messages, most recently pinned first. @return list<array<string, mixed>> */
    public function pinned(int $groupId): array
    {
        /** @var MessageHistoryResponse $r */
        $r = $this->call('ListPinned', new ListPinnedRequest(['group_id' => $groupId]), MessageHistoryResponse::class, $this->retries);
        $out = [];
        foreach ($r->getMessages() as $m) {
            $out[] = self::message($m);
        }
        return $out;
    }

    /**
     * Moves the user's read position forward to `$seq` (0: everything so far).
     *
     * @return array{read_seq: int, unread_count: int}
     */
    public function markRead(int $groupId, int $seq = 0): array
    {
        /** @var MarkReadResponse $r */
        $r = $this->call('MarkRead', new MarkReadRequest(['group_id' => $groupId, 'seq' => $seq]), MarkReadResponse::class);
        return ['read_seq' => (int) $r->getReadSeq(), 'unread_count' => (int) $r->getUnreadCount()];
    }

    /**
     * Moves the user's read position back so `$messageId` is the first unread message.
     *
     * @return array{read_seq: int, unread_count: int, mention_count: int}
     */
    public function markUnread(int $groupId, int $messageId): array
    {
        /** @var MarkUnreadResponse $r */
        $r = $this->call('MarkUnread', new MarkUnreadRequest(['group_id' => $groupId, 'message_id' => $messageId]), MarkUnreadResponse::class);
        return ['read_seq' => (int) $r->getReadSeq(), 'unread_count' => (int) $r->getUnreadCount(), 'mention_count' => $r->getMentionCount()];
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
            'mention_count' => $g->getMentionCount(),
            'thread_unread_count' => (int) $g->getThreadUnreadCount(),
            'pinned_count' => $g->getPinnedCount(),
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
            'deleted' => $m->getDeleted(),
            'thread_parent_id' => (int) $m->getThreadParentId(),
            'also_in_group' => $m->getAlsoInGroup(),
            'reply_count' => $m->getReplyCount(),
            'last_reply_at_ms' => (int) $m->getLastReplyAtMs(),
            'thread_participant_ids' => array_map('intval', iterator_to_array($m->getThreadParticipantIds())),
            'pinned_by' => (int) $m->getPinnedBy(),
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
